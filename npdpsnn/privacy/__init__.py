"""Privacy: batch sampling (:mod:`.sampling`), clipping and Gaussian noise
(:mod:`.mechanism`), and the accountants (:mod:`.accountants`)."""

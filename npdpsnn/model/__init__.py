"""The model: spec strings (:mod:`.spec`), options (:mod:`.config`), parameters
(:mod:`.params`), and the scalar math every backend compiles -- surrogates
(:mod:`.surrogates`), neuron dynamics (:mod:`.neurons`) and the loss (:mod:`.loss`)."""

"""npdpsnn.training"""

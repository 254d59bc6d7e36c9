"""npdpsnn.kernels"""

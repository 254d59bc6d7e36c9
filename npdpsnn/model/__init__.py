"""npdpsnn.model"""

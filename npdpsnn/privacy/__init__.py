"""npdpsnn.privacy"""

"""npdpsnn.data"""

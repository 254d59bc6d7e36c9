"""npdpsnn.privacy.accountants"""

"""Judging models on real traffic: feedback on requests (feedback.py) and shadow calls to a
candidate model beside the incumbent (shadow.py)."""

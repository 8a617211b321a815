"""Scoring: the fitted pipeline's fast scorer, its trees and explanations, file scoring."""

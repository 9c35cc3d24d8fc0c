"""Helpers the tests share, kept out of the app's packages."""

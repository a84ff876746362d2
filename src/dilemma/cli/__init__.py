"""The `dilemma` command line."""

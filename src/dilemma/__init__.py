"""dilemma: attack, explain and defend language models on ethical-dilemma jailbreaks."""

__version__ = "0.1.0"

"""Local question answering with cited passages over a collection of news articles."""

__version__ = "0.1.0"

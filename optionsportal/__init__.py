"""Options Portal: the configuration portal beside JupyterHub."""

__version__ = "0.1.0"

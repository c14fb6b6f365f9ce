"""Public import path kept for paglet authors (see API.md); the code lives in ``paglets.client.transfer``."""

from paglets.client.transfer import TransferTicket

__all__ = ["TransferTicket"]

"""Loopback fakes of outside services (Hugging Face Hub, ...), used by the tests."""

"""The operator dashboard at ``/admin/``."""

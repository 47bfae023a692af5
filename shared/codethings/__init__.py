"""Shared library of the Code Things components: configuration, authentication,
the JWKS cache, problem responses, data access and HTTP helpers.

Only `platform` and `db` import `spin_sdk`, and only inside a component, so every
other module runs under plain CPython in unit tests.
"""

"""Authentication and request security for the API and UI (ADR 0038): password
hashing, signed session cookies, bearer tokens, CSRF, security headers, body limits."""

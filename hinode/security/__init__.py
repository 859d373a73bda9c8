"""Security tooling: MQTT TLS + per-identity credentials and ACL, API token and password hashes.

    python -m hinode.security mqtt --inventory inventory.yaml --out secrets/mqtt
    python -m hinode.security new-token [--name NAME --role viewer|admin --scopes a:read,b:read]
    python -m hinode.security hash-token            # reads the token from stdin
    python -m hinode.security add-user NAME [--role viewer|admin --scopes a:read]   # asks for the password
    python -m hinode.security new-secret FILE       # HMAC key for tokens the API issues
"""

"""Keys and the small AWS clients: the token codec, signing keys, and SigV4/DynamoDB access.

``tokens`` and ``signing_keys`` (with ``aws_json``, ``aws_timeouts``) import only the standard
library, for the authorizer; ``dynamodb`` is the boto3 client the control plane uses.
"""

"""AWS on aiobotocore: shared clients, rate limits, AWS Batch at scale.

Needs ``pip install "airloop[aws]"``.
"""

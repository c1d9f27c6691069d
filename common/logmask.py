"""Log lines never carry an API key's or a scale hook's secret.

A scale hook's secret is part of its URL, and Django logs the path of every 4xx and 5xx answer
("Bad Request: /service/web/scale/blh_…"). This filter, on the one stdout handler
(common.env.logging_config), keeps the public prefix of any key-shaped word and masks the secret:
`blh_Pq4abcde.***`.
"""
import logging
import re

SECRET = re.compile(r"\b(bl[kh]_[A-Za-z0-9]{1,16})\.[A-Za-z0-9]+")
REDEPLOY_SECRET = re.compile(r"\bblrh_[A-Za-z0-9_-]+")  # a redeploy hook's URL secret has no public prefix


def mask_secrets(text):
    return REDEPLOY_SECRET.sub("blrh_***", SECRET.sub(r"\1.***", text))


class SecretMaskFilter(logging.Filter):
    def filter(self, record):
        message = record.getMessage()
        masked = mask_secrets(message)
        if masked != message:
            record.msg, record.args = masked, None
        return True

"""Small helpers of the API tests: a create through the in-process API, scripts, streamed bodies."""
import base64

from tests.conftest import IMAGE_NAME, IMAGE_TAG


def create(client, **fields):
    return client.post("/v1/container/", {"image_name": IMAGE_NAME, "image_tag": IMAGE_TAG, **fields}, format="json")


def b64(text):
    return base64.b64encode(text.encode()).decode()


def body(response):
    return b"".join(response.streaming_content) if response.streaming else response.content

"""A ModelSerializer's fields are built from the model once per class, and every instance has its own."""
import pytest
from rest_framework import serializers

from boatload.api.serializers import ContainerSerializer, HostSerializer, JoinTokenSerializer, TemplateSerializer
from boatload.logins.api import APIKeySerializer

MODEL_SERIALIZERS = [ContainerSerializer, HostSerializer, JoinTokenSerializer, TemplateSerializer, APIKeySerializer]


@pytest.mark.parametrize("serializer_class", MODEL_SERIALIZERS)
def test_fields_are_built_once_a_class_and_copied_for_each_instance(serializer_class, monkeypatch):
    first = serializer_class()
    first_fields = first.fields
    built = []
    original = serializers.ModelSerializer.build_field
    monkeypatch.setattr(serializers.ModelSerializer, "build_field",
                        lambda self, *args: built.append(args[0]) or original(self, *args))
    second = serializer_class()
    assert repr(second.fields) == repr(first_fields)
    assert built == [], f"{serializer_class.__name__} built {built} again"
    # Each instance's own: bound to it, none shared with another instance.
    assert all(field.parent is second for field in second.fields.values())
    assert not {id(field) for field in second.fields.values()} & {id(field) for field in first_fields.values()}
    # The same fields as DRF builds itself.
    assert repr(second.get_fields()) == repr(serializers.ModelSerializer.get_fields(serializer_class()))

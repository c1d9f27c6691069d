"""Admin forms that check what they save with the API's own serializers: one rule in one place.

The admin is a way to change rows beside the API. A ModelForm alone checks only the model's fields, so
a service definition, a template body or a compute's connector would go in unchecked (a healthcheck
Docker refuses, a compute whose satellite calls go unsigned). `checked_by(Serializer)` makes the form
run the serializer the API uses and take what it cleaned (e.g. a compute's host link)."""
from django import forms
from django.db import models


def _messages(errors, prefix=""):
    """DRF's nested errors as flat `field: message` lines."""
    if isinstance(errors, dict):
        for key, value in errors.items():
            name = "" if key == "non_field_errors" else str(key)
            yield from _messages(value, f"{prefix}.{name}" if prefix and name else prefix or name)
    elif isinstance(errors, list):
        for item in errors:
            yield from _messages(item, prefix)
    else:
        yield prefix, str(errors)


def _as_input(field, value):
    """A form's cleaned value as the serializer takes it: a related row by its slug (or key)."""
    if isinstance(value, models.Model):
        return getattr(value, getattr(field, "slug_field", None) or "pk")
    return value


def checked_by(create_serializer, update_serializer=None):
    """A ModelForm class whose clean() runs `create_serializer` (a new row) or `update_serializer` (a change)
    over the form's fields."""

    class CheckedForm(forms.ModelForm):
        def clean(self):
            cleaned = super().clean()
            if self.errors:
                return cleaned
            changing = self.instance.pk is not None
            serializer_class = (update_serializer or create_serializer) if changing else create_serializer
            fields = serializer_class().fields
            data = {key: _as_input(fields[key], value) for key, value in cleaned.items()
                    if key in fields and not fields[key].read_only}
            serializer = serializer_class(instance=self.instance if changing else None, partial=changing, data=data)
            if serializer.is_valid():
                cleaned.update({key: value for key, value in serializer.validated_data.items()
                                if key in self.fields or key in cleaned})
                for key, value in serializer.validated_data.items():
                    if key not in self.fields and hasattr(self.instance, key):
                        setattr(self.instance, key, value)  # a field the form does not show (a compute's host)
                return cleaned
            for field, message in _messages(serializer.errors):
                top = field.split(".")[0]
                target = top if top in self.fields else None
                self.add_error(target, f"{field}: {message}" if field and field != target else message)
            return cleaned

    return CheckedForm

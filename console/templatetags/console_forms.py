"""Form fields of the console, each with its label and its error slot next to it.

`{% field "ports" "Ports" kind="textarea" %}` draws one field: its label, the control (id
`f-<name>`, the value typed, `aria-invalid` and `aria-describedby` when it has an error) and the
error of that field (id `err-<name>`). Every field drawn is noted, and `{% errors_elsewhere %}`
(after the last field) shows the errors of any name no field of the page drew, so an error the API
names a field for is never dropped because the form has no slot for it.
"""
from django import template

register = template.Library()


def _placed(context):
    return context.render_context.setdefault("console_fields_placed", set())


@register.inclusion_tag("console/_field.html", takes_context=True)
def field(context, name, label, kind="input", rows=2, placeholder="", inputmode="", options=(), blank=None,
          staff=False):
    _placed(context).add(name)
    values = context.get("values") or {}
    errors = context.get("errors") or {}
    choices = [(option, option) if isinstance(option, str) else tuple(option) for option in options]
    return {"name": name, "label": label, "kind": kind, "rows": rows, "placeholder": placeholder,
            "inputmode": inputmode, "choices": choices, "blank": blank, "staff": staff,
            "value": values.get(name, "") if hasattr(values, "get") else "", "error": errors.get(name)}


@register.inclusion_tag("console/_errors_elsewhere.html", takes_context=True)
def errors_elsewhere(context):
    placed = _placed(context) | {"form"}
    errors = context.get("errors") or {}
    return {"errors": [(name, message) for name, message in errors.items() if name not in placed]}

"""The admin API, one module per resource; each adds its routes with `add(api, control)`."""

"""The authoring API: what a DAG file imports (re-exported from ``airloop``)."""

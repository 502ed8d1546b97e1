echo "script for {{ ds }} in {{ params.where }}"

"""Async hooks: clients for external systems, shared per connection id within a process."""

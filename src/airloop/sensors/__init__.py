"""The everyday sensors: each waits as a coroutine, never holding a thread or a process."""

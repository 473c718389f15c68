"""The long-running daemon: its loop, status server and page, notifications, lock."""

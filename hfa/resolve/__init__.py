"""From what a user names to what a pull fetches: repo references (refs), model cards (card),
which files a model needs and why (selection), and commit + file list resolution (resolver)."""

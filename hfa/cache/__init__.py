"""The huggingface_hub cache on disk: layout and atomic writes (layout), content hashes
(hashing), reading it (inventory), planning removals (plan) and carrying them out (delete)."""

"""Content checks that never execute content: pickle opcodes, archives, Git-LFS stubs, safetensors headers."""

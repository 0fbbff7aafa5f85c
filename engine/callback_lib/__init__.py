"""What callbacks import. engine/callback_runner.py puts this directory (not engine/) first
on a Python callback's sys.path, so `import qb` finds qb.py here and nothing else of Tock."""

"""Pure per-lab checks and their targets: what the notebooks' test cells call.

Students can read every module here (the student bundle ships this folder whole),
so nothing here holds an answer. Each check builds its own inputs, runs the student's
code through ``autograder.checks.student`` and returns a list of readable problems;
``[]`` means pass. Targets come from torchvision (``weights=None``) or from the JSON
files in ``targets/``.
"""

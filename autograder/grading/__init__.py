"""The grading pipeline around nbgrader: never shipped to students.

``course`` (the course folder and its release), ``preflight`` (archive and normalise a
submission), ``scan`` (flag code that reaches for the grader), ``sandbox`` (the
bubblewrap kernel), ``feedback`` (what a student sees afterwards), ``grade`` (the
driver), ``samples`` (the bundled sample submissions), ``bundle`` (what students get)
and ``colab`` (the badge and setup cells).
"""

"""What users run: the ``dlnet`` command (:mod:`dlnet.apps.cli`, one module per subcommand in
:mod:`dlnet.apps.commands`) and the web page and REST API (:mod:`dlnet.apps.serve`, its page in
``static/``; its form fields made from the options' declarations by :mod:`dlnet.apps.forms`). Apps only parse, check and report; the work is done by the other subpackages.
This ``__init__`` imports nothing, so ``dlnet --help`` stays fast.
"""

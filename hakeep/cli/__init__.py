"""The ``hakeep`` command line: parser and dispatch (:mod:`.main`), one module per subcommand
(:mod:`.commands`), exit codes (:mod:`.exitcodes`), and everything printed — text (:mod:`.output`,
:mod:`.views`, the only rich imports) and JSON (:mod:`.jsondoc`). May import every other package.
"""

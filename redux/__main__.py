from redux.cli import app

app(prog_name="redux")

GREETING = "installed"

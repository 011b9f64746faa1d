from .main import run

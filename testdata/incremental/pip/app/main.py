from .util import greet


def run():
    print(greet("world"))

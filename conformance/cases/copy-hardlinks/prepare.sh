ln a b
ln a sub/a2

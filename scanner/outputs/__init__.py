"""Writers of scan results, one module per format; ``registry`` lists them."""

import os

# Keras 3 picks its backend when it is first imported and defaults to TensorFlow,
# which the test extra does not install; torch (CPU) is there already. A backend
# the user chose is kept.
os.environ.setdefault("KERAS_BACKEND", "torch")

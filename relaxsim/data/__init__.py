"""Tasks: the datasets a network trains on, registered by name (:mod:`~relaxsim.data.tasks`):
the digits scikit-learn ships, SVHN (:mod:`~relaxsim.data.svhn`), tiny Shakespeare
(:mod:`~relaxsim.data.text`), their image features (:mod:`~relaxsim.data.images`) and downloads
(:mod:`~relaxsim.data.download`)."""

"""What tdrl knows about the machines a study runs on: GPU models and cloud instance types with their
prices (:mod:`tdrl.cluster.instances`), the node types of a cluster file (:mod:`tdrl.cluster.nodes`),
and a network's training speed on a GPU it was not measured on (:mod:`tdrl.cluster.speed`).
Nothing here starts Ray or touches a cloud: the planner (``--plan``) reads it."""

"""Vehicle footprints of the lane scene (metres)."""

EGO_LENGTH_M = 4.8
EGO_WIDTH_M = 2.0
EGO_REAR_AXLE_TO_CENTRE_M = 1.4  # the rig origin is the rear axle; the box centre is ahead of it
EGO_FRONT_M = EGO_REAR_AXLE_TO_CENTRE_M + 0.5 * EGO_LENGTH_M
LEAD_LENGTH_M = 4.6
LEAD_WIDTH_M = 1.9

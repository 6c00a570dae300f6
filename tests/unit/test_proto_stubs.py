"""The Alpasim wire contract in redux/proto: stubs are current, descriptors match specs/egodriver.md."""

import importlib.metadata

import pytest
from google.protobuf import json_format
from google.protobuf.descriptor import FieldDescriptor

from redux.proto import common_pb2, egodriver_pb2, egodriver_pb2_grpc, regenerate, runtime_pb2, runtime_pb2_grpc
from redux.proto import sensorsim_pb2


def test_checked_in_stubs_match_regeneration(tmp_path):
    pytest.importorskip("grpc_tools", reason="grpcio-tools (dev extra) regenerates the stubs")
    fresh = {p.name: p.read_bytes() for p in regenerate.generate(tmp_path)}
    checked_in = {p.name: p.read_bytes() for p in regenerate.generated_files(regenerate.PROTO_DIR)}
    assert fresh, "protoc generated nothing"
    stale = sorted(name for name in fresh.keys() | checked_in.keys() if fresh.get(name) != checked_in.get(name))
    assert not stale, (
        f"stubs in redux/proto differ from the .proto files: {stale}; run `make proto` "
        f"(generated with grpcio-tools {importlib.metadata.version('grpcio-tools')})"
    )


def _field(field: FieldDescriptor) -> str:
    """A field as the spec writes it: ``number: [repeated|optional] type name``."""
    if field.message_type is not None and field.message_type.GetOptions().map_entry:
        key, value = (_type(f) for f in field.message_type.fields)
        return f"{field.number}: map<{key},{value}> {field.name}"
    label = "repeated " if field.is_repeated else "optional " if _proto3_optional(field) else ""
    return f"{field.number}: {label}{_type(field)} {field.name}"


def _proto3_optional(field: FieldDescriptor) -> bool:
    oneof = field.containing_oneof
    return oneof is not None and oneof.name == f"_{field.name}"  # protoc's synthetic oneof of `optional`


def _type(field: FieldDescriptor) -> str:
    if field.message_type is not None:
        return field.message_type.full_name
    if field.enum_type is not None:
        return field.enum_type.full_name
    names = {v: k.removeprefix("TYPE_").lower() for k, v in vars(FieldDescriptor).items() if k.startswith("TYPE_")}
    return names[field.type]


def _message(full_name: str):
    for module in (common_pb2, sensorsim_pb2, egodriver_pb2, runtime_pb2):
        try:
            return module.DESCRIPTOR.pool.FindMessageTypeByName(full_name)
        except KeyError:
            continue
    raise KeyError(full_name)


SENSORSIM = "nre.grpc.protos.sensorsim"
CAMERA = f"{SENSORSIM}.AvailableCamerasReturn.AvailableCamera"

# The tables of specs/egodriver.md, with type names fully qualified.
FIELDS = {
    "common.Empty": [],
    "common.Vec3": ["1: float x", "2: float y", "3: float z"],
    "common.AABB": ["1: float size_x", "2: float size_y", "3: float size_z"],
    "common.AvailableScenesReturn": ["1: repeated string scene_ids"],
    "common.Pose": ["1: common.Vec3 vec", "2: common.Quat quat"],
    "common.Quat": ["1: float w", "2: float x", "3: float y", "4: float z"],
    "common.PoseAtTime": ["1: common.Pose pose", "2: fixed64 timestamp_us"],
    "common.StateAtTime": ["1: fixed64 timestamp_us", "2: common.Pose pose", "3: common.DynamicState state"],
    "common.Trajectory": ["1: repeated common.PoseAtTime poses"],
    "common.DynamicState": [
        "1: common.Vec3 angular_velocity",
        "2: common.Vec3 linear_velocity",
        "3: common.Vec3 linear_acceleration",
        "4: common.Vec3 angular_acceleration",
    ],
    "common.VersionId": ["1: string version_id", "2: string git_hash", "3: common.VersionId.APIVersion grpc_api_version"],
    "common.VersionId.APIVersion": ["1: uint32 major", "2: uint32 minor", "3: uint32 patch"],
    "common.SessionRequestStatus": [],
    "egodriver.DriveSessionRequest": [
        "1: string session_uuid",
        "2: fixed64 random_seed",
        "4: optional egodriver.DriveSessionRequest.DebugInfo debug_info",
        "5: egodriver.DriveSessionRequest.RolloutSpec rollout_spec",
    ],
    "egodriver.DriveSessionRequest.DebugInfo": ["1: string scene_id"],
    "egodriver.DriveSessionRequest.RolloutSpec": ["1: egodriver.DriveSessionRequest.RolloutSpec.VehicleDefinition vehicle"],
    "egodriver.DriveSessionRequest.RolloutSpec.VehicleDefinition": [f"3: repeated {CAMERA} available_cameras"],
    "egodriver.DriveSessionCloseRequest": ["1: string session_uuid"],
    "egodriver.GroundTruth": ["1: common.Trajectory trajectory", "2: fixed64 timestamp_us"],
    "egodriver.RolloutCameraImage": ["1: string session_uuid", "3: egodriver.RolloutCameraImage.CameraImage camera_image"],
    "egodriver.RolloutCameraImage.CameraImage": [
        "2: fixed64 frame_start_us",
        "3: fixed64 frame_end_us",
        "4: bytes image_bytes",
        "5: string logical_id",
    ],
    "egodriver.RolloutEgoTrajectory": [
        "1: string session_uuid",
        "3: common.Trajectory trajectory",
        "5: repeated common.DynamicState dynamic_states",
    ],
    "egodriver.Route": ["1: repeated common.Vec3 waypoints", "2: fixed64 timestamp_us"],
    "egodriver.RouteRequest": ["1: string session_uuid", "3: egodriver.Route route"],
    "egodriver.GroundTruthRequest": ["1: string session_uuid", "2: egodriver.GroundTruth ground_truth"],
    "egodriver.DriveRequest": [
        "1: string session_uuid",
        "3: fixed64 time_now_us",
        "4: fixed64 time_query_us",
        "5: bytes renderer_data",
    ],
    "egodriver.DriveResponse": [
        "2: common.Trajectory trajectory",
        "3: egodriver.DriveResponse.DebugInfo debug_info",
        "4: bool terminate_session",
    ],
    "egodriver.DriveResponse.DebugInfo": [
        "1: bytes unstructured_debug_info",
        "2: repeated common.Trajectory sampled_trajectories",
    ],
    f"{SENSORSIM}.AvailableCamerasReturn": [f"1: repeated {CAMERA} available_cameras"],
    CAMERA: [f"1: {SENSORSIM}.CameraSpec intrinsics", "2: common.Pose rig_to_camera", "3: string logical_id"],
    f"{SENSORSIM}.CameraSpec": [
        "1: string temporary_camera_spec",
        f"2: {SENSORSIM}.FthetaCameraParam ftheta_param",
        f"3: {SENSORSIM}.OpenCVPinholeCameraParam opencv_pinhole_param",
        f"4: {SENSORSIM}.OpenCVFisheyeCameraParam opencv_fisheye_param",
        "5: string logical_id",
        "7: uint32 resolution_h",
        "8: uint32 resolution_w",
        f"9: {SENSORSIM}.ShutterType shutter_type",
        f"10: {SENSORSIM}.BivariateWindshieldModelParameters bivariate_windshield_model_param",
    ],
    f"{SENSORSIM}.OpenCVPinholeCameraParam": [
        "1: double principal_point_x",
        "2: double principal_point_y",
        "3: double focal_length_x",
        "4: double focal_length_y",
        "5: repeated double radial_coeffs",
        "6: repeated double tangential_coeffs",
        "7: repeated double thin_prism_coeffs",
    ],
    f"{SENSORSIM}.OpenCVFisheyeCameraParam": [
        "1: double principal_point_x",
        "2: double principal_point_y",
        "3: double focal_length_x",
        "4: double focal_length_y",
        "5: repeated double radial_coeffs",
        "6: double max_angle",
    ],
    f"{SENSORSIM}.FthetaCameraParam": [
        "1: double principal_point_x",
        "2: double principal_point_y",
        f"3: {SENSORSIM}.FthetaCameraParam.PolynomialType reference_poly",
        "4: repeated double pixeldist_to_angle_poly",
        "5: repeated double angle_to_pixeldist_poly",
        "6: double max_angle",
        f"7: {SENSORSIM}.LinearCde linear_cde",
    ],
    f"{SENSORSIM}.LinearCde": ["1: double linear_c", "2: double linear_d", "3: double linear_e"],
    f"{SENSORSIM}.BivariateWindshieldModelParameters": [
        f"1: {SENSORSIM}.BivariateWindshieldModelParameters.ReferencePolynomial reference_poly",
        "2: repeated double horizontal_poly",
        "3: repeated double vertical_poly",
        "4: repeated double horizontal_poly_inverse",
        "5: repeated double vertical_poly_inverse",
    ],
    "RolloutSpec": ["1: string scenario_id", "2: uint32 nr_rollouts", "3: repeated string session_uuids"],
    "SimulationRequest": [
        "1: repeated SimulationRequest.DriverAddress available_drivers",
        "2: repeated RolloutSpec rollout_specs",
        "3: uint32 n_concurrent_per_driver",
    ],
    "SimulationRequest.DriverAddress": ["1: string ip", "2: uint32 port"],
    "SimulationReturn": [
        "1: common.VersionId runtime_version",
        "2: common.VersionId nre_version",
        "3: common.VersionId physics_version",
        "4: common.VersionId driver_version",
        "5: common.VersionId traffic_version",
        "6: repeated SimulationReturn.RolloutReturn rollout_returns",
        "7: common.VersionId video_model_version",
    ],
    "SimulationReturn.RolloutReturn": [
        "1: RolloutSpec rollout_spec",
        "2: bool success",
        "3: string rollout_uuid",
        "4: string error",
        "5: repeated SimulationReturn.TimestepMetric timestep_metrics",
        "6: map<string,double> aggregated_metrics",
        "7: RolloutErrorCode error_code",
    ],
    "SimulationReturn.TimestepMetric": [
        "1: string name",
        "2: repeated fixed64 timestamps_us",
        "3: repeated double values",
        "4: repeated bool valid",
        "5: TimeAggregation time_aggregation",
    ],
    "SceneMetadata": [
        "1: string version_string",
        "2: string training_date",
        "3: string dataset_hash",
        "4: string uuid",
        "5: repeated string camera_ids",
        "6: repeated string lidar_ids",
        "7: fixed64 start_time_us",
        "8: fixed64 end_time_us",
    ],
    "SceneInfo": ["1: string scene_id", "2: string provider_kind", "3: SceneMetadata metadata"],
    "ServiceCapacity": ["1: string service_name", "2: uint32 total_capacity", "3: bool skipped"],
    "RuntimeInfo": [
        "1: uint32 max_supported_concurrent_rollouts",
        "2: uint32 nr_workers",
        "3: string renderer_type",
        "4: repeated SceneInfo scenes",
        "5: repeated ServiceCapacity service_capacities",
        "6: common.VersionId runtime_version",
        "7: common.VersionId nre_version",
        "8: common.VersionId physics_version",
        "9: common.VersionId driver_version",
        "10: common.VersionId traffic_version",
        "11: common.VersionId video_model_version",
    ],
}


@pytest.mark.parametrize("full_name", sorted(FIELDS))
def test_message_fields_match_spec(full_name):
    descriptor = _message(full_name)
    assert sorted((_field(f) for f in descriptor.fields), key=lambda s: int(s.split(":")[0])) == FIELDS[full_name]


def test_no_messages_beyond_spec():
    def walk(messages):
        for message in messages:
            if not message.GetOptions().map_entry:
                yield message.full_name
                yield from walk(message.nested_types)

    modules = (common_pb2, sensorsim_pb2, egodriver_pb2, runtime_pb2)
    assert sorted(n for m in modules for n in walk(m.DESCRIPTOR.message_types_by_name.values())) == sorted(FIELDS)


def test_packages_match_upstream():
    assert common_pb2.DESCRIPTOR.package == "common"
    assert sensorsim_pb2.DESCRIPTOR.package == SENSORSIM
    assert egodriver_pb2.DESCRIPTOR.package == "egodriver"
    assert runtime_pb2.DESCRIPTOR.package == ""  # upstream has none: the service is the bare RuntimeService


def test_oneofs_and_enums_match_spec():
    camera_spec = _message(f"{SENSORSIM}.CameraSpec")
    oneofs = {o.name: sorted(f.name for f in o.fields) for o in camera_spec.oneofs}
    assert oneofs == {
        "camera_param": ["ftheta_param", "opencv_fisheye_param", "opencv_pinhole_param"],
        "external_distortion": ["bivariate_windshield_model_param"],
    }

    def values(enum):
        return {v.name: v.number for v in enum.values}

    assert values(sensorsim_pb2.ShutterType.DESCRIPTOR) == {
        "UNKNOWN": 0,
        "ROLLING_TOP_TO_BOTTOM": 1,
        "ROLLING_LEFT_TO_RIGHT": 2,
        "ROLLING_BOTTOM_TO_TOP": 3,
        "ROLLING_RIGHT_TO_LEFT": 4,
        "GLOBAL": 5,
    }
    assert values(sensorsim_pb2.FthetaCameraParam.PolynomialType.DESCRIPTOR) == {
        "UNKNOWN": 0,
        "PIXELDIST_TO_ANGLE": 1,
        "ANGLE_TO_PIXELDIST": 2,
    }
    assert values(sensorsim_pb2.BivariateWindshieldModelParameters.ReferencePolynomial.DESCRIPTOR) == {
        "FORWARD": 0,
        "BACKWARD": 1,
    }
    assert values(runtime_pb2.TimeAggregation.DESCRIPTOR) == {
        f"TIME_AGGREGATION_{name}": i for i, name in enumerate(["UNSPECIFIED", "MEAN", "MEDIAN", "MAX", "MIN", "LAST"])
    }
    assert values(runtime_pb2.RolloutErrorCode.DESCRIPTOR) == {
        "ROLLOUT_ERROR_CODE_NONE": 0,
        "ROLLOUT_ERROR_CODE_UNSPECIFIED": 1,
        "ROLLOUT_ERROR_CODE_INVALID_SCENE": 2,
    }


SERVICES = {
    "egodriver.EgodriverService": {
        "start_session": ("egodriver.DriveSessionRequest", "common.SessionRequestStatus"),
        "close_session": ("egodriver.DriveSessionCloseRequest", "common.Empty"),
        "submit_image_observation": ("egodriver.RolloutCameraImage", "common.Empty"),
        "submit_egomotion_observation": ("egodriver.RolloutEgoTrajectory", "common.Empty"),
        "submit_route": ("egodriver.RouteRequest", "common.Empty"),
        "submit_recording_ground_truth": ("egodriver.GroundTruthRequest", "common.Empty"),
        "drive": ("egodriver.DriveRequest", "egodriver.DriveResponse"),
        "get_version": ("common.Empty", "common.VersionId"),
    },
    "RuntimeService": {
        "simulate": ("SimulationRequest", "SimulationReturn"),
        "get_runtime_info": ("common.Empty", "RuntimeInfo"),
        "shut_down": ("common.Empty", "common.Empty"),
    },
}


@pytest.mark.parametrize("module, grpc_module", [(egodriver_pb2, egodriver_pb2_grpc), (runtime_pb2, runtime_pb2_grpc)])
def test_services_match_spec(module, grpc_module):
    (service,) = module.DESCRIPTOR.services_by_name.values()
    rpcs = {m.name: (m.input_type.full_name, m.output_type.full_name) for m in service.methods}
    assert rpcs == SERVICES[service.full_name]
    assert not any(m.client_streaming or m.server_streaming for m in service.methods)  # all unary
    servicer = getattr(grpc_module, f"{service.name}Servicer")
    assert all(callable(getattr(servicer, name, None)) for name in rpcs)


def test_drive_request_wire_bytes():
    # fixed64 (wire type 1) for times: an int64 varint here would still parse but not interoperate
    request = egodriver_pb2.DriveRequest(session_uuid="s", time_now_us=1, time_query_us=100_001, renderer_data=b"r")
    expected = b"\x0a\x01s" + b"\x19" + (1).to_bytes(8, "little") + b"\x21" + (100_001).to_bytes(8, "little")
    assert request.SerializeToString() == expected + b"\x2a\x01r"


def test_minisim_camera_catalogue_parses_into_available_camera():
    from redux.sim_bridge.minisim.cameras import alpamayo_rig, spec_as_dict, spec_from_dict

    for spec in alpamayo_rig(1916, 1080):
        message = json_format.ParseDict(spec_as_dict(spec), sensorsim_pb2.AvailableCamerasReturn.AvailableCamera())
        assert message.intrinsics.shutter_type == sensorsim_pb2.GLOBAL
        back = spec_from_dict(
            json_format.MessageToDict(
                message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
            )
        )
        assert (back.logical_id, back.width, back.height) == (spec.logical_id, 1916, 1080)
        assert back.fx == pytest.approx(spec.fx)
        assert back.rig_to_camera == pytest.approx(spec.rig_to_camera, abs=1e-6)  # pose goes through float32

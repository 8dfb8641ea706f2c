from projects import events
from projects.models import Dataset, DatasetImport, SyntheticGeneration, Upload
from slmlab.consumers import FollowConsumer


class DatasetConsumer(FollowConsumer):
    """Follows one dataset: statistics progress, setting checks and token previews."""

    def find(self, user, kwargs) -> Dataset | None:
        return (
            Dataset.objects.filter(pk=kwargs["dataset_id"], owner_id=user.pk)
            .select_related("project")
            .first()
        )

    def group_of(self, dataset: Dataset) -> str:
        return events.dataset_group(dataset.pk)

    def current_state(self, dataset: Dataset) -> str:
        return events.current_state(dataset)


class UploadConsumer(FollowConsumer):
    """Follows one upload that a worker checks: rows checked, then where it was stored."""

    def find(self, user, kwargs) -> Upload | None:
        return (
            Upload.objects.filter(pk=kwargs["upload_id"], owner_id=user.pk)
            .select_related("result", "project")
            .first()
        )

    def group_of(self, upload: Upload) -> str:
        return events.upload_group(upload.pk)

    def current_state(self, upload: Upload) -> str:
        return events.render_upload(upload)


class DatasetImportConsumer(FollowConsumer):
    """Follows one Hub import: bytes fetched, rows checked, then the dataset it made."""

    def find(self, user, kwargs) -> DatasetImport | None:
        return (
            DatasetImport.objects.filter(pk=kwargs["import_id"], owner_id=user.pk)
            .select_related("result")
            .first()
        )

    def group_of(self, item: DatasetImport) -> str:
        return events.import_group(item.pk)

    def current_state(self, item: DatasetImport) -> str:
        return events.render_import(item)


class SyntheticGenerationConsumer(FollowConsumer):
    """Follows one model-written dataset: rows generated, kept and dropped, then the dataset."""

    def find(self, user, kwargs) -> SyntheticGeneration | None:
        return (
            SyntheticGeneration.objects.filter(pk=kwargs["generation_id"], owner_id=user.pk)
            .select_related("result")
            .first()
        )

    def group_of(self, item: SyntheticGeneration) -> str:
        return events.generation_group(item.pk)

    def current_state(self, item: SyntheticGeneration) -> str:
        return events.render_generation(item)

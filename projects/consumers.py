from projects import events
from projects.models import Dataset
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

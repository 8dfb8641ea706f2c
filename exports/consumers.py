from exports.events import exports_group, render_list
from slmlab.consumers import FollowConsumer
from training.models import Run


class ExportsConsumer(FollowConsumer):
    """Follows one run's exports: progress, verification, sizes, pushes."""

    def find(self, user, kwargs) -> Run | None:
        return Run.objects.filter(pk=kwargs["run_id"], owner_id=user.pk).first()

    def group_of(self, run: Run) -> str:
        return exports_group(run.pk)

    def current_state(self, run: Run) -> str:
        return render_list(run)

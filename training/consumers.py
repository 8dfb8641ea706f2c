from slmlab.consumers import FollowConsumer
from training.events import render_chats, render_run_state, run_group
from training.models import Run


class RunConsumer(FollowConsumer):
    """Follows one run: its live panel, the after-training panel and the chats."""

    def find(self, user, kwargs) -> Run | None:
        return Run.objects.filter(pk=kwargs["run_id"], owner_id=user.pk).first()

    def group_of(self, run: Run) -> str:
        return run_group(run.pk)

    def current_state(self, run: Run) -> str:
        return render_run_state(run) + render_chats(run)

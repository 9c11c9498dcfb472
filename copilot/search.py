"""Custom search attributes for operators (Temporal UI, ``temporal workflow list --query``).

Registered automatically on the embedded dev server; on a production cluster run once:

    temporal operator search-attribute create --namespace default \\
        --name CopilotUserId --type Keyword --name CopilotChatId --type Keyword \\
        --name CopilotModel --type Keyword --name CopilotProvider --type Keyword \\
        --name CopilotStatus --type Keyword

or set ``TEMPORAL_SEARCH_ATTRIBUTES=false``.
"""

from __future__ import annotations

from temporalio.common import SearchAttributeKey

USER_ID = SearchAttributeKey.for_keyword("CopilotUserId")
CHAT_ID = SearchAttributeKey.for_keyword("CopilotChatId")
MODEL = SearchAttributeKey.for_keyword("CopilotModel")
PROVIDER = SearchAttributeKey.for_keyword("CopilotProvider")
STATUS = SearchAttributeKey.for_keyword("CopilotStatus")
